"""Stands in for the ``cython`` module when ``_parse.py`` runs uncompiled without Cython.

Only ``cython.compiled`` is read at run time: the rest of what ``_parse.py`` uses from
``cython`` is in its compiled branches, which never run uncompiled.
"""

compiled = False
