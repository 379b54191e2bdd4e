"""A rendered training sequence: trained tokens, masked tokens and special tokens in distinct styles."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

Token = tuple[str, bool, bool]  # text piece, trained (carries loss), special token


class TokenView(Static):
    """Token pieces joined back into the text, styled per token from the theme (component classes)."""

    COMPONENT_CLASSES = {"token--trained", "token--masked", "token--special"}
    DEFAULT_CSS = """
    TokenView .token--trained { color: $text-success; background: $success-muted; text-style: bold; }
    TokenView .token--masked { color: $text-muted; }
    TokenView .token--special { color: $text-warning; text-style: reverse; }
    """

    def show(self, tokens: list[Token], header: str = "") -> None:
        """Render ``tokens`` under ``header``; newlines inside pieces show as ⏎ and break the line."""
        text = Text(header + "\n" if header else "")
        styles = {name: self.get_component_rich_style(f"token--{name}") for name in ("trained", "masked", "special")}
        for piece, trained, special in tokens:
            style = styles["special"] if special else styles["trained" if trained else "masked"]
            shown = piece.replace("\n", "⏎\n")
            text.append(shown, style=style)
        self.update(text)

    @staticmethod
    def legend() -> str:
        """What the styles mean (shown under the view)."""
        return "trained = bold on green, masked = dim, special tokens = reversed"
