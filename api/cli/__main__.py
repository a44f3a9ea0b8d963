"""`python -m api.cli ...`: the `outdial` command without its installed script."""

from api.cli.main import main

raise SystemExit(main())
