"""Names at the paths of the chapter's ``seigr_toolset_transmissions.utils`` package.

Only :mod:`seigr_stt.utils.constants` lives here: it is :mod:`seigr_stt.constants` under the
chapter's path, so a plain rename of the chapter's imports
(``seigr_toolset_transmissions.utils.constants`` → ``seigr_stt.utils.constants``) works.
New code imports :mod:`seigr_stt.constants`.
"""
