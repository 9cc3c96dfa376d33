"""What the tests share and never collect as tests: pytest plugins (the session's servers),
helpers written once, and the small programs tests start as processes
(``python -m tests.support.<name>``). No test module imports another test module."""
