from optmpp.cli import main

raise SystemExit(main())
