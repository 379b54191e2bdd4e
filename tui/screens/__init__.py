"""One screen per module; SCREEN_ORDER is the order of the number keys."""

from tui.screens.adapter import AdapterScreen
from tui.screens.chat import ChatScreen
from tui.screens.data import DataScreen
from tui.screens.export import ExportScreen
from tui.screens.keys import KeysScreen
from tui.screens.method import MethodScreen
from tui.screens.runs import RunsScreen
from tui.screens.template import TemplateScreen
from tui.screens.train import TrainScreen

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
