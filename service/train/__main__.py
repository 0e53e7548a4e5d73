from service.train.cli import main

raise SystemExit(main())
