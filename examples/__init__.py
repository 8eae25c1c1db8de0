"""Runnable examples: ``python examples/NAME.py``.

A package only so that the test suite can import an example's functions and run them
(``from examples.session_lifecycle import session_lifecycle``).
"""
