"""`python -m tunedeck.tui.cli`: the same as the `tunedeck` command."""

from tunedeck.tui.cli.main import main

raise SystemExit(main())
