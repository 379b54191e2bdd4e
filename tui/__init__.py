"""The Textual front end of tunedeck (imports the ML stack only inside functions that need it)."""
