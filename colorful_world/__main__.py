from colorful_world.cli import main

raise SystemExit(main())
