"""`python -m dreamlab` runs the CLI (also what `torchrun -m dreamlab` starts)."""
from dreamlab.apps.cli import main

raise SystemExit(main())
