"""lagless's pytest plugin (registered through the ``pytest11`` entry point).

Inert unless used. The fixtures and the ``--lagless`` option are built in the doctor issue;
this module must import cheaply because pytest loads it in every test run of every project
that has lagless installed.
"""

from __future__ import annotations
