"""The run-time type checker the test suite installs on interp_steer (jaxtyping shapes + beartype types).

``int`` is accepted where ``float`` is annotated (PEP 484's numeric tower), as Python's own typing rules allow.
"""

from beartype import BeartypeConf, beartype

checker = beartype(conf=BeartypeConf(is_pep484_tower=True))
