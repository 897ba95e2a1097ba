"""``python -m graylink`` and the ``graylink`` command (``[project.scripts]``).

Importing the command line takes a second or more on a busy machine: a Ctrl-C
in that time must end as one line and exit 130 like any other, not as a
traceback, so the import happens inside the handler.
"""

import sys

INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a command ended by Ctrl-C


def run() -> None:
    try:
        from graylink.cli import main

        main()
    except KeyboardInterrupt:
        sys.stderr.write("graylink: interrupted\n")
        sys.exit(INTERRUPTED)


if __name__ == "__main__":
    run()
