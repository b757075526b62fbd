"""The augmentation ladder and the X-ray style and detector effects it draws."""
