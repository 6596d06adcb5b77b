from colorful_world.apps.cli import main

raise SystemExit(main())
