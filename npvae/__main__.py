"""``python -m npvae`` is the ``npvae`` command."""

from .run.cli import main

raise SystemExit(main())
