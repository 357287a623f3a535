"""The built-in suites, TOML files shipped as package data (``unetgan_bench.suites``)."""
