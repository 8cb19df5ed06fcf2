from services.followup.main import main

main()
