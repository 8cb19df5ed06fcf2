import sys

if sys.argv[1:2] == ["users"]:
    from services.console.cli import main as cli

    sys.exit(cli(sys.argv[1:]))

from services.console.main import main

main()
