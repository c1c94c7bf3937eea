from rtpvault.cli import main

main()
