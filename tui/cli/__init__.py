"""The headless twins: argparse built from the recipe's types (not Textual)."""
