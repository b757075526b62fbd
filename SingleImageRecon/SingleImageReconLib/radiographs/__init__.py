"""What comes in: radiograph files read with their geometry, and checks that a picture is a radiograph."""
