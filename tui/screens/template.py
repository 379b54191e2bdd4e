"""Template: one training row rendered through the chat template, token by token, with the loss mask."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Static

from tunedeck.tui.messages import TemplateRendered, WorkFailed
from tunedeck.tui.screens.base import StudioScreen
from tunedeck.tui.widgets.token_view import Token, TokenView
from tunedeck.tui.workers import background, ml_turn


def template_names() -> list[str]:
    """The picker's choices: the model's own template, then the built-ins."""
    from tunedeck.engine.templates import BUILTIN_TEMPLATES

    return ["model", *BUILTIN_TEMPLATES]


def mask_banner(views) -> str:
    """A warning when the mask was not marked by the template itself ({% generation %}), with what was done."""
    how = {v.how for v in views}
    notes = [n for v in views for n in v.notes]
    if "rewritten" in how:
        return "⚠ this template rewrites earlier turns: " + "; ".join(notes)
    if "prefixes" in how:
        return "⚠ mask derived by rendering growing prefixes (the template has no {% generation %} markers)"
    return ""


class TemplateScreen(StudioScreen):
    """Renders row N of data.train with template.name; t picks the template, n/p the row."""

    BINDINGS = [
        Binding("t", "next_template", "Template", id="tpl-next", tooltip="Use the next chat template (saved in the recipe)"),
        Binding("n", "row(1)", "Next row", id="tpl-row-next", tooltip="Render the next dataset row"),
        Binding("p", "row(-1)", "Prev row", id="tpl-row-prev", tooltip="Render the previous dataset row"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.index = 0

    def compose_body(self) -> ComposeResult:
        yield Static(id="tpl-head", markup=False)
        yield Static(id="tpl-banner", markup=False)
        with VerticalScroll(id="tpl-scroll"):
            yield TokenView(id="tpl-tokens")
        yield Static(TokenView.legend(), id="tpl-legend", markup=False)

    def on_mount(self) -> None:
        self.render_row()

    def on_screen_resume(self) -> None:
        self.render_row()

    def render_row(self) -> None:
        """Render the current row with the recipe's template (in a thread: it loads the tokenizer)."""
        name = str(self.store.get("template.name", "model"))
        self.query_one("#tpl-head", Static).update(f"template: {name}   row {self.index}   rendering...")
        source = self.store.resolve(str(self.store.get("data.train", "")))
        assistant_only = bool(self.store.get("method.assistant_only_loss", True))
        model = self.store.tokenizer_source()
        self._render_tokens(name, self.index, source, model, self.store.resolve(name), assistant_only)

    @background("template", exclusive=True)
    def _render_tokens(self, name: str, index: int, source: str, model: dict, template_path: str,
                       assistant_only: bool) -> None:  # fmt: skip
        from tunedeck.engine.data.inspect import read_row
        from tunedeck.engine.model.loading import load_chat_tokenizer
        from tunedeck.engine.templates import token_views
        from tunedeck.engine.templates.drops import dropped_parts, row_drops_line

        try:
            fmt, where, row, errors = read_row(source, index)
            if row is None:
                raise ValueError(f"{where}: invalid row: {'; '.join(e.reason for e in errors)}")
            with ml_turn(self, "the template preview"):
                tokenizer, template = load_chat_tokenizer(template=template_path, **model)  # a .jinja beside the recipe
                views = token_views(tokenizer, row, template, assistant_only_loss=assistant_only)
                drops = row_drops_line(dropped_parts(tokenizer, row, template))
        except (OSError, ValueError) as e:  # a bad template or row is shown, never raised
            self.post_message(TemplateRendered(name, index, error=str(e)))
            return
        special = set(tokenizer.all_special_ids)
        tokens: list[Token] = []
        for view in views:
            if len(views) > 1:
                tokens.append((f"\n── {view.name} ──\n", False, False))
            tokens += [(p, t, i in special) for i, p, t in zip(view.ids, view.pieces, view.trained, strict=True)]
        trained = sum(sum(v.trained) for v in views)
        total = sum(len(v.ids) for v in views)
        head = f"template: {name}   row {index} ({where.short()}, {fmt})   {trained}/{total} tokens trained"
        banner = "\n".join(b for b in (mask_banner(views), f"⚠ {drops}" if drops else "") if b)
        self.post_message(TemplateRendered(name, index, head, tokens, banner))

    def on_template_rendered(self, message: TemplateRendered) -> None:
        if message.index != self.index:  # n/p moved on while this row rendered
            return
        if message.error:
            self.post_message(WorkFailed("template", message.error))
            self._show_error(message.name, message.index, message.error)
        else:
            self._show(message.head, message.tokens, message.banner)

    def _show(self, head: str, tokens: list[Token], banner: str = "") -> None:
        self.query_one("#tpl-head", Static).update(head)
        self._banner(banner)
        self.query_one(TokenView).show(tokens)

    def _banner(self, text: str) -> None:
        banner = self.query_one("#tpl-banner", Static)
        banner.update(text)
        banner.display = bool(text)

    def _show_error(self, name: str, index: int, error: str) -> None:
        self.query_one("#tpl-head", Static).update(f"template: {name}   row {index}")
        self._banner("")
        self.query_one(TokenView).update(error)

    def action_next_template(self) -> None:
        """Cycle template.name through model and the built-ins."""
        names = template_names()
        current = str(self.store.get("template.name", "model"))
        name = names[(names.index(current) + 1) % len(names)] if current in names else names[0]
        problem = self.store.set("template.name", name)
        if problem:
            self.notify(problem, severity="error", markup=False)
        self.render_row()

    def action_row(self, delta: int) -> None:
        """Move to another row."""
        self.index = max(0, self.index + delta)
        self.render_row()
