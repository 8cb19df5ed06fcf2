from services.assignment.main import main

main()
