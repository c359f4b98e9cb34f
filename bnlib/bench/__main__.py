from bnlib.bench.cli import main

main()
