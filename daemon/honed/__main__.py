from honed.cli import main

main()
