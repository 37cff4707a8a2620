"""spark-submit's entry point for the cxrzoo command line.

``spark-submit [flags] /path/to/cxrzoo/submit.py train --data ... --out ...`` runs ``cxrzoo train`` as a
Spark application: the session is the one spark-submit configured (master, archives, Python, class paths),
and cxrzoo adds only the session-level settings left unset.  ``cxrzoo spark-conf --archive ENV --launcher``
prints the flags followed by this file's path.
"""
import sys
from pathlib import Path

if __name__ == "__main__":
    # run as a script, Python puts this file's directory first on sys.path, where cxrzoo's own modules
    # (session, labels, ...) would shadow top-level modules of the same names
    if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
        del sys.path[0]
    from cxrzoo.cli import main

    main(sys.argv[1:])
