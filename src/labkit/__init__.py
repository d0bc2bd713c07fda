"""labkit: the tested library behind the labkit executable textbook.

Subpackages: :mod:`labkit.moe` (Part I, LaDiMo dense→MoE), :mod:`labkit.evals` (Part II,
bilingual evaluation), :mod:`labkit.flagella` (Part III, flagellar hydrodynamics). Shared
infrastructure: :mod:`labkit.config` (profiles), :mod:`labkit.models` (model zoo),
:mod:`labkit.likelihood` (the log-likelihood scorer of Parts I and II), :mod:`labkit.book` (glue),
:mod:`labkit.plotting` (house style), :mod:`labkit.paths`.

Importing :mod:`labkit` is cheap: nothing heavy (torch, transformers) is imported until used.
"""

from .config import Profile, ProfileError, get_profile

__all__ = ["Profile", "ProfileError", "__version__", "get_profile"]
__version__ = "0.1.0"
