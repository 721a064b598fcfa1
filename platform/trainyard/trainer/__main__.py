from trainyard.trainer.cli import main

raise SystemExit(main())
