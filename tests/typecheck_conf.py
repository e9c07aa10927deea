"""The run-time type checker the test suite installs on interp_steer (jaxtyping shapes + beartype types).

``int`` is accepted where ``float`` is annotated (PEP 484's numeric tower), as Python's own typing rules allow.
"""

import os

from beartype import BeartypeConf, beartype

ENABLED = os.environ.get("INTERP_STEER_TYPECHECK", "1") != "0"
"""Whether the suite installs the checker (on unless INTERP_STEER_TYPECHECK=0); tests that pass deliberately
wrong types read it to know which error comes first."""

checker = beartype(conf=BeartypeConf(is_pep484_tower=True))
