from assistant.cli import main

if __name__ == "__main__":  # the model worker process (spawn) imports this module again
    main()
