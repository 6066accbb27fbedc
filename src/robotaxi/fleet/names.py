"""First names for simulated riders: the car greets each rider by name.

About 300 common US first names, chosen to reflect the variety of names heard in
San Francisco (English, Spanish, Chinese, Filipino, Vietnamese, Korean, Japanese, South
Asian, Arabic, African-American, Jewish, Slavic, Irish, and more), written out here so
that the list needs no download and stays identical from run to run.
"""

from __future__ import annotations

# fmt: off
FIRST_NAMES: tuple[str, ...] = (
    "Aaliyah", "Aaron", "Abdul", "Abigail", "Adam", "Adrian", "Aisha", "Akira", "Alan",
    "Alejandra", "Alejandro", "Alex", "Alexander", "Alexis", "Ali", "Alice", "Alicia", "Alma",
    "Amanda", "Amara", "Amber", "Amina", "Amir", "Amy", "Ana", "Andre", "Andrea", "Andrew",
    "Angel", "Angela", "Anita", "Anjali", "Ann", "Anna", "Anthony", "Antonio", "Arjun",
    "Armando", "Arturo", "Ashley", "Aubrey", "Ava", "Ayesha", "Barbara", "Beatriz", "Ben",
    "Benjamin", "Bianca", "Bilal", "Brandon", "Brenda", "Brian", "Brianna", "Camila",
    "Carlos", "Carmen", "Carol", "Caroline", "Catherine", "Cesar", "Charles", "Charlotte",
    "Chen", "Cheryl", "Chloe", "Chris", "Christina", "Christopher", "Cristina", "Cynthia",
    "Daniel", "Daniela", "Darius", "David", "Deborah", "Deepa", "Denise", "Derek", "Destiny",
    "Devon", "Diana", "Diego", "Dmitri", "Dolores", "Dominic", "Donna", "Duc", "Dylan",
    "Eduardo", "Elena", "Eli", "Elijah", "Elizabeth", "Ella", "Emily", "Emma", "Enrique",
    "Eric", "Erin", "Esperanza", "Esther", "Ethan", "Eugene", "Evelyn", "Fatima", "Felipe",
    "Fernando", "Fiona", "Francisco", "Gabriel", "Gabriela", "Gary", "George", "Gloria",
    "Grace", "Guadalupe", "Hana", "Hannah", "Hao", "Harold", "Hassan", "Heather", "Hector",
    "Helen", "Hiroshi", "Hoang", "Hugo", "Ian", "Imani", "Ingrid", "Irene", "Isaac",
    "Isabel", "Isabella", "Ivan", "Jack", "Jacob", "Jada", "Jamal", "James", "Jasmine",
    "Jason", "Javier", "Jayden", "Jennifer", "Jesse", "Jessica", "Jesus", "Jia", "Jin",
    "Joanna", "John", "Jonathan", "Jorge", "Jose", "Joseph", "Joshua", "Joy", "Juan",
    "Julia", "Julian", "Justin", "Kai", "Karen", "Karim", "Katherine", "Kayla", "Keisha",
    "Kenji", "Kevin", "Khalid", "Kiara", "Kim", "Kofi", "Krishna", "Kyle", "Lakshmi",
    "Latoya", "Laura", "Layla", "Leah", "Lei", "Leila", "Leon", "Liam", "Lila", "Lily",
    "Linda", "Ling", "Lisa", "Liz", "Logan", "Lorenzo", "Lucas", "Lucia", "Luis", "Luna",
    "Mai", "Malik", "Manuel", "Marcus", "Maria", "Mariana", "Marisol", "Mark", "Marta",
    "Martin", "Mary", "Mason", "Matthew", "Maya", "Mei", "Melissa", "Mia", "Michael",
    "Michelle", "Miguel", "Min", "Ming", "Minh", "Miriam", "Mohammed", "Monica", "Nadia",
    "Nancy", "Naomi", "Natalia", "Nathan", "Nia", "Nicole", "Nikhil", "Nina", "Noah",
    "Nora", "Olga", "Olivia", "Omar", "Oscar", "Pablo", "Pamela", "Patricia", "Patrick",
    "Paul", "Pedro", "Peter", "Phuong", "Priya", "Rachel", "Rafael", "Rahul", "Raj",
    "Ramon", "Raquel", "Rashid", "Raul", "Rebecca", "Ricardo", "Richard", "Rina", "Robert",
    "Roberto", "Rohan", "Rosa", "Ruth", "Ryan", "Sam", "Samantha", "Samir", "Sandra",
    "Santiago", "Sara", "Sarah", "Sean", "Sergei", "Shanice", "Sofia", "Sophia", "Stephanie",
    "Steven", "Sunil", "Sung", "Susan", "Takeshi", "Tamika", "Tanya", "Teresa", "Thanh",
    "Thomas", "Tiffany", "Timothy", "Tomas", "Trevor", "Tyrone", "Valentina", "Vanessa",
    "Victor", "Victoria", "Vikram", "Vivian", "Walter", "Wei", "William", "Xavier", "Xin",
    "Yara", "Yasmin", "Yolanda", "Yuki", "Yusuf", "Zainab", "Zara", "Zoe",
)
# fmt: on
