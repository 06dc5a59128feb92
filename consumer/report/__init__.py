"""The analysts' report (`fraudstream report`): the bucket's outputs over a time range, read with
SQL (DuckDB), as figures in JSON, a self-contained HTML page and Markdown (docs/analytics.md)."""
