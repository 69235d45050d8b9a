"""Helpers of the example programs' smoke tests (``tests/test_examples*.py``): loading an example
as it runs as a script, and its command line's ``--help`` and refusals."""
import importlib
import os
import sys

import pytest

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


def load_example(name: str, images: bool = False):
    """The module ``examples/<name>.py``, imported with ``examples/`` on ``sys.path`` (as when it runs as
    a script, so its ``_imaging`` / ``_figures`` imports resolve).  ``images``: skip the calling test
    without scikit-image, which the image examples need."""
    if images:
        pytest.importorskip("skimage", reason="the image examples need scikit-image (pip install -e '.[test]')")
    if EXAMPLES not in sys.path:
        sys.path.insert(0, EXAMPLES)
    return importlib.import_module(name)


def assert_help_lists(main, flags, capsys) -> None:
    """``main(["--help"])`` exits with status 0 and its help names every one of ``flags``."""
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for flag in flags:
        assert flag in text


def assert_refused(main, argv, capsys) -> str:
    """``main(argv)`` exits with argparse's usage-error status 2 and an error message; returns stderr."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "error" in err
    return err
