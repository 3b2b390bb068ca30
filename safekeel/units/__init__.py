"""SSAH safety units: find them by structure, score (ssah / wanda / snip), classify, prune, freeze during training.

Names are imported lazily so that `safekeel --help` (which imports `safekeel.units.cli`) stays fast.
"""

from importlib import import_module

_EXPORTS = {
    "find_units": "discover", "UnitModule": "discover", "score": "scores", "METHODS": "scores",
    "classify": "unitmap", "load": "unitmap", "save": "unitmap", "UnitMap": "unitmap", "CLASSES": "unitmap",
    "SELECTORS": "unitmap", "pruned": "ablate", "zero_units": "ablate", "random_like": "ablate",
    "sample_within": "ablate", "build_freeze_callback": "freeze", "UnitFreezer": "freeze",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(name)
