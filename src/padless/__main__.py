from padless.cli import main

main()
