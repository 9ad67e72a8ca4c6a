from cropmap.cli import main

raise SystemExit(main())
