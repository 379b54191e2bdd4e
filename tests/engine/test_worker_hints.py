"""A failure's hint says what to do, with the recipe's own numbers where they matter."""

import errno

from tunedeck.engine.data import DataError
from tunedeck.engine.recipe import recipe_from_dict
from tunedeck.engine.run.worker import _hint

RECIPE = recipe_from_dict(
    {"model": {"name_or_path": "m"}, "data": {"train": "d"}, "train": {"per_device_train_batch_size": 32, "max_length": 2048}}
)


def test_out_of_memory_hint_names_the_settings_and_their_values():
    exc = RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.2 GiB total capacity)")
    hint = _hint(exc, RECIPE)
    assert "per_device_train_batch_size=32" in hint and "max_length=2048" in hint
    assert "gradient_checkpointing" in hint and "qlora" in hint and "tunedeck estimate" in hint


def test_disk_full_and_data_errors_say_what_to_do():
    assert "disk is full" in _hint(OSError(errno.ENOSPC, "No space left on device"), RECIPE)
    assert "tunedeck data inspect" in _hint(DataError("data.train: 3 rows invalid"), RECIPE)
    assert "learning_rate" in _hint(FloatingPointError("loss became nan"), RECIPE)
