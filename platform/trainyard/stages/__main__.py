from trainyard.stages.cli import main

raise SystemExit(main())
