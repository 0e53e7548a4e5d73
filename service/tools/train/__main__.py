from service.tools.train.cli import main

raise SystemExit(main())
