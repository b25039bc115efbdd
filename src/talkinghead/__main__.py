"""``python -m talkinghead`` runs the command-line interface."""

from talkinghead.cli import main

raise SystemExit(main())
