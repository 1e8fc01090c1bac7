"""`python -m ima` runs the command line."""

from ima.cli import main

if __name__ == "__main__":
    main()
