"""The embedded stack: real Temporal dev server, worker and API on one machine, for
`make up`, `make demo` and the test suite. Not imported by Spool's runtime code."""
