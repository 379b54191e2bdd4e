"""One screen per module; SCREEN_ORDER is the order of the number keys."""

from tunedeck.tui.screens.adapter import AdapterScreen
from tunedeck.tui.screens.chat import ChatScreen
from tunedeck.tui.screens.data import DataScreen
from tunedeck.tui.screens.export import ExportScreen
from tunedeck.tui.screens.keys import KeysScreen
from tunedeck.tui.screens.method import MethodScreen
from tunedeck.tui.screens.runs import RunsScreen
from tunedeck.tui.screens.template import TemplateScreen
from tunedeck.tui.screens.train import TrainScreen

SCREEN_ORDER = (
    ("runs", "Runs", RunsScreen),
    ("data", "Data", DataScreen),
    ("template", "Template", TemplateScreen),
    ("adapter", "Adapter", AdapterScreen),
    ("method", "Method", MethodScreen),
    ("train", "Train", TrainScreen),
    ("export", "Export", ExportScreen),
    ("chat", "Chat", ChatScreen),
)
MODES = {mode: cls for mode, _, cls in SCREEN_ORDER}

__all__ = ["MODES", "SCREEN_ORDER", "KeysScreen", *(cls.__name__ for _, _, cls in SCREEN_ORDER)]
