"""The ``stt`` command line (:mod:`seigr_stt.cli`), one test module per module of the package.

Most tests run ``python -m seigr_stt`` as users run it: subprocesses on 127.0.0.1 only.
"""
