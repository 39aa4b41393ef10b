from myafya.cli import main

main()
