"""Human-facing output: number formatting (:mod:`.format`), console tables (:mod:`.console`) and markdown → HTML
pages (:mod:`.html`). Machine tables (CSV / parquet) are written elsewhere and keep full precision."""

from interp_steer.report.format import format_ci, format_count, format_interval, format_value

__all__ = ["format_ci", "format_count", "format_interval", "format_value"]
