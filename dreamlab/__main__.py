"""`python -m dreamlab` runs the CLI (also what `torchrun -m dreamlab` starts)."""
from dreamlab._entry import main

raise SystemExit(main())
