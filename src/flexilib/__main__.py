from flexilib.cli import main

raise SystemExit(main())
