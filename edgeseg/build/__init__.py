"""``edgeseg build``: the stage table (``stages``), the cached, atomic, resumable loop over it
(``pipeline``), the run directory's lock (``lock``), the runs listing and cleaning (``runs``) and
experiment tracking (``tracking``)."""
