#!/usr/bin/env python
"""Write tagtune's synthetic sample data: ``src/tagtune/sample_data/{train,validation,test}.conll``.

Sentences come from hand-written templates of news-like English (sport, business, politics, culture)
filled with invented or common names; nothing is taken from CoNLL-2003 or any other corpus. Output is
CoNLL-2003 column layout, ``word POS chunk NER`` with Penn Treebank POS tags, IOB2 chunk tags from a
small rule chunker and IOB2 NER tags (PER, ORG, LOC, MISC); ``-DOCSTART- -X- -X- O`` starts each
document of 5-15 sentences.

The output depends only on this file (fixed seed, no set iteration): run it again and the files are
byte-identical. ``--check`` regenerates in memory and fails when the committed files differ.

    python scripts/make_sample_data.py            # write the files
    python scripts/make_sample_data.py --check    # verify the committed files
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

SEED = 20241125
OUT_DIR = Path(__file__).resolve().parents[1] / "src" / "tagtune" / "sample_data"
SPLIT_SIZES = {"train": 400, "validation": 100, "test": 100}

# --------------------------------------------------------------------------------------------------
# Names. Each pool is cut into names shared by all splits and names only one split uses, so the test
# split has entities the model never saw next to ones it did.

FIRST_NAMES = """Ngozi Tomasz Aiko Rafael Ingrid Kwame Mei Dmitri Lucía Omar Hannah Priya Mateo Yusuf Elena
Samuel Fatima Lars Chiara Kofi Anya Diego Sofia Hiroshi Amara Jonas Leila Marcus Nadia Pablo Rosa Tariq
Helena Viktor Imani Felix Zoë José Łukasz Søren Chloé François Åsa Mehmet Renée Jürgen Inês Björn Zeynep
Grace Daniel Carmen Idris Maya Oskar Teresa Ravi Olga Amadou""".split()
LAST_NAMES = """Okafor Brenner Tanaka Alvarez Haugen Mensah Lindqvist Petrov Moreno Haddad Weller Raman Castillo
Demir Ivanova Kariuki Nasser Eriksen Ferraro Boateng Kowalski Oyelaran Santos Nakamura Achebe Richter
Farouk Delgado Novak Quintero Hassan Vance Adeyemi Lehmann Whitfield Szabó Lefèvre Álvarez Wiśniewski
Dahl Moreau Dubois Yılmaz Côté Müller Gonçalves Þórsson Kaya Oduya Marsh Calloway Ferreira Lindgren
Abernathy Kovač Ishikawa Mbeki Rossi Hartmann""".split()
# A few people written in full, with three tokens or non-Latin-1 letters.
FULL_NAMES = ["Nguyễn Thị Lan", "Jean-Pierre Lacroix", "María José Ortega", "Anh Trần", "Ólafur Ragnarsson",
              "Dagný Þórsdóttir", "Ahmet Çelik", "Małgorzata Zielińska"]

CLUBS = ["FC Dunmore", "Lakemoor United", "Riverside Athletic", "Northgate Rovers", "Sporting Valmare",
         "Real Castellón", "Eastbrook City", "Kestrel FC", "Blackwater Wanderers", "Union Saint-Rémy",
         "Atlético Palmera", "Harwick Town", "Vostok Moscow", "Fjordby IF", "Carlow Celtic", "Olympia Thessa"]
COMPANIES = ["Northwind Logistics", "Bluehaven Energy", "Corvid Systems", "Tessaro Motors", "Halvorsen Shipping",
             "Quillon Pharma", "Marigold Foods", "Ardent Telecom", "Silverline Airways", "Okapi Mining",
             "Vantage Steel", "Brightwater Retail", "Helix Biotech", "Polaris Media", "Granite Cement",
             "Sunfield Solar", "Kite & Lantern Publishing", "Meridian Insurance", "Lumen Software",
             "Société Générale d'Éclairage"]
BANKS = ["Northwind Bank", "Caldera Capital", "First Harbour Bank", "Banco Solana", "Ridgeway Securities",
         "Union Mutual Bank", "Kestrel Investments", "Ostara Finance"]
RESEARCH = ["University of Lakemoor", "Institute of Marine Studies", "Rivermark Institute", "Valmare Polytechnic",
            "Kessler Medical Centre", "Nordhaven University", "Centre for Climate Research", "Okonkwo Foundation"]
AGENCIES = ["Central Statistics Office", "Federal Reserve", "Bank of Valmare", "European Central Bank",
            "National Statistics Institute", "Treasury", "International Monetary Fund"]
RELIEF = ["Red Cross", "National Weather Service", "Civil Protection Agency", "World Health Organisation",
          "United Nations", "Coast Guard", "Ministry of Health", "Médecins du Monde"]
RIGHTS = ["Amnesty International", "Human Rights Watch", "Committee to Protect Journalists", "United Nations",
          "European Commission", "Council of Europe"]
MEDIA = ["Harbour Times", "Valmare Herald", "Radio Nordhaven", "Daily Courier", "Lakemoor Post", "Télé Azur",
         "Morning Ledger"]
VENUES = ["Academy of Fine Arts", "National Theatre", "Lakemoor Gallery", "Valmare Opera House",
          "Museum of the Sea", "Kunsthalle Nordhaven", "Palacio de las Artes"]
CITIES = ["Lisbon", "Nairobi", "Oslo", "Kraków", "São Paulo", "Reykjavík", "Zürich", "Málaga", "Düsseldorf",
          "Lagos", "Osaka", "Montreal", "Hamburg", "Valparaíso", "Marseille", "Accra", "Gothenburg", "Porto",
          "Istanbul", "Hanoi", "Chicago", "Manchester", "Auckland", "Lyon", "Tbilisi", "Córdoba", "Dakar",
          "Seville", "Bergen", "Wellington", "Lakemoor", "Valmare", "Dunmore", "Harwick", "Eastbrook"]
COUNTRIES = ["Portugal", "Kenya", "Norway", "Poland", "Brazil", "Iceland", "Switzerland", "Spain", "Germany",
             "Nigeria", "Japan", "Canada", "Chile", "France", "Ghana", "Sweden", "Turkey", "Vietnam",
             "New Zealand", "Georgia", "Argentina", "Senegal", "Italy", "Mexico", "South Africa", "Denmark"]
REGIONS = ["Bavaria", "Patagonia", "the Balkans", "Scandinavia", "West Africa", "the Alps", "Andalusia",
           "the Rhine valley", "Lake Victoria", "the Atlas Mountains", "Rift Valley", "Île-de-France"]
NATIONALITIES = [("Portuguese", "Portuguese"), ("Kenyan", "Kenyans"), ("Norwegian", "Norwegians"),
                 ("Polish", "Poles"), ("Brazilian", "Brazilians"), ("Icelandic", "Icelanders"),
                 ("Swiss", "Swiss"), ("Spanish", "Spaniards"), ("German", "Germans"), ("Nigerian", "Nigerians"),
                 ("Japanese", "Japanese"), ("Canadian", "Canadians"), ("Chilean", "Chileans"),
                 ("French", "French"), ("Ghanaian", "Ghanaians"), ("Swedish", "Swedes"), ("Turkish", "Turks"),
                 ("Vietnamese", "Vietnamese"), ("Mexican", "Mexicans"), ("Italian", "Italians")]
CUPS = ["Harbour Cup", "Continental Championship", "Coastal Classic", "Super Cup", "Copa del Sol", "Northern Shield"]
RACES = ["Northern Marathon", "Valmare Open", "Summer Games", "Tour of the Fjords", "Lakemoor Grand Prix",
         "Winter Series", "Atlantic Regatta", "Coupe des Alpes"]
CULTURE_EVENTS = ["Harbour Jazz Festival", "Lakemoor Book Fair", "Festival of Light", "Valmare Film Week",
                  "Nordic Design Biennale", "Summer Opera Season", "Carnaval de Palmera", "Autumn Poetry Days"]
AWARDS = ["Golden Quill", "Harbour Prize", "Silver Lantern Award", "Meridian Medal", "Northern Star Prize"]
PRODUCTS = ["Falcon X2", "Aurora 7", "Nimbus Pro", "Corvid One", "Tessaro Vela", "Helix Go", "Lumen Office"]
LANGUAGES = ["English", "French", "Portuguese", "Swahili", "Norwegian", "Spanish", "Turkish", "Vietnamese",
             "Polish", "Japanese"]

# --------------------------------------------------------------------------------------------------
# Part-of-speech lexicon for template words (Penn Treebank tags). Entity words are NNP unless listed
# in ENTITY_POS. Every literal template word must be here; the script stops otherwise.

LEXICON_TEXT = """
DT: the The a A an An this This these all no another each both
PRP$: its Its his His her Her their Their our Our
PRP: he He she She it It they They we We us them him
WP: who
WP$: whose
IN: in In on On at At of for For from with With by after After before Before against near than about
    during During that while While because although Although over into as As since under across despite
    along behind between worth
    Despite outside until
TO: to
CC: and And but But or
MD: will would could can may must should
RB: also not n't already still again later now very well late early once almost just twice
VB: be build sign return play open visit raise leave discuss meet win join lead cut invest close reach
    expand fly review help lose buy hold grow miss release
VBD: said beat won joined told arrived signed scored opened announced reported fell rose met called
    rejected warned added lost drew finished missed launched bought agreed named moved returned
    played released left expected led cut closed was were had published praised appointed hired
    confirmed criticised approved sold conducted came involved remained watched
VBZ: says is has plans expects remains wants hopes leads needs wins rises opens
VBP: are have say expect
VBG: including following playing building according seeking
VBN: been expected injured arrested held elected named delayed shown directed based appointed damaged
    approved written reached
JJ: new net strong weak first second third last next chief former local national foreign
    annual early late major top good bad big small higher lower heavy key main free regional
    international open young senior private public joint three-year two-year short long own
    recent several further economic political financial technical difficult ready happy proud
    interim quarterly quiet busy crowded sold-out electric full unchanged useful
JJS: biggest largest best
JJR: more
NN: profit company team season year week month night title match final_n deal statement government
    economy forecast demand quarter share plant office coach minister president director head
    growth rain flood storm concert novel film exhibition study laboratory contract injury
    goal victory defeat draw league city border trade agreement percent capital market factory fleet
    final mayor opposition jury pay parliament winner 
    bank police court election vote budget tax report crowd stadium festival prize record strike
    port spokesman spokeswoman manager captain striker midfielder goalkeeper chairman debut
    analyst research project network service airport ceasefire summit round tournament weekend
    revenue merger fire talk orchestra audience evening morning afternoon time half start end
    interview programme board rate inflation unit product version model drought winter
    summer area bridge rescue emergency village river coast island mountain trip
    reporter editor journalist conductor author singer player series life work executive group home
    result rival
NNS: people reporters shares talks years players fans workers goals jobs prices points protests
    investors officials analysts patients students visitors tickets ministers minutes months
    plans stores factories journalists results flights homes residents games seats votes
    families tourists records markets days clubs members teams subtitles rates charges researchers
    organisers races floods players companies offices taxes sales
POS: 's
,: ,
.: .
:: : ; -
``: ``
'': ''
(: (
): )
$: $
CD: one two three four five six seven eight nine ten eleven twelve
"""

SUBORDINATORS = {"that", "while", "While", "because", "although", "Although"}

# --------------------------------------------------------------------------------------------------
# Templates. ``{SLOT}`` is filled by :func:`fill`; other words come from the lexicon (``word/TAG``
# overrides it). Clauses have no final full stop, so they can be joined into long sentences.

SPORT = [
    "{CLUB} beat {CLUB} {SCORE} in {CITY} on {DAY} .",
    "{CLUB} and {CLUB} will meet in the {CUP} final in {CITY} on {DATE} .",
    "{PER} scored twice as {CLUB} won the {CUP} final in {CITY} .",
    "{NAT} striker {PER} joined {CLUB} on a three-year contract on {DAY} .",
    "{PER} of {COUNTRY} won the title at the {RACE} after a strong final round .",
    "Coach {PER} said his team had played/VBN well in {CITY} despite the heavy rain .",
    "{CLUB} goalkeeper {PER} was injured in the first half and missed the final .",
    "{PER} finished second behind {PER} in the {RACE} on {DAY} .",
    "The {RACE} will return to {CITY} next year , organisers said on {DAY} .",
    "{CLUB} drew {SCORE_DRAW} with {CLUB} , who are still top of the league .",
    "`` We are very happy with the result , '' {SURNAME} told reporters after the match .",
    "{CLUB} have signed/VBN {NAT} midfielder {PER} from {CLUB} for {MONEY} .",
    "{PER} , the {CLUB} captain , will miss the next {NUMWORD} games with an injury .",
    "More than {NUM} fans watched {CLUB} lose {SCORE} to {CLUB} at home .",
    "{SURNAME} has scored/VBN {NUMWORD} goals in his last {NUMWORD} games for {CLUB} .",
    "{PER} ( {COUNTRY} ) {SCORE} {PER} ( {COUNTRY} )",
    "{NAT_PL} won {NUMWORD} of the {NUMWORD} races at the {RACE} in {REGION} .",
]
BUSINESS = [
    "{COMPANY} said on {DAY} its net profit rose {PCT} to {MONEY} .",
    "Shares in {COMPANY} fell {PCT} in {CITY} after the company cut/VBD its forecast .",
    "{COMPANY} will buy {COMPANY} for {MONEY} , the companies said in a statement .",
    "{PER} , chief executive of {COMPANY} , told reporters in {CITY} that demand remained strong .",
    "The {NAT} company plans to build a new plant near {CITY} .",
    "{COMPANY} launched the {PRODUCT} in {COUNTRY} last month .",
    "Analysts at {BANK} expect the {NAT} economy to grow by {PCT} this year .",
    "{BANK} named {PER} as its new chief executive on {DAY} .",
    "{COMPANY} and {COMPANY} agreed a joint project in {REGION} worth {MONEY} .",
    "Sales of the {PRODUCT} rose {PCT} in the first quarter , {COMPANY} reported .",
    "The {AGENCY} said inflation was {PCT} in {MONTH} , unchanged from the month before/RB .",
    "{PER} , an analyst at {BANK} , said the merger would help {COMPANY} expand in {COUNTRY} .",
    "{COMPANY} expects to close {NUM} stores in {COUNTRY} by the end of the year .",
    "Workers at the {COMPANY} factory in {CITY} called a strike over pay on {DAY} .",
    "{COMPANY} hired {NUM} people in {CITY} , {SURNAME} said .",
]
POLITICS = [
    "{NAT} Prime/NNP Minister/NNP {PER} arrived in {CITY} on {DAY} for talks with {PER} .",
    "The {RELIEF} said {NUM} people had been injured in the floods in {REGION} .",
    "{PER} told parliament that the government would not raise taxes this year .",
    "Foreign ministers from {COUNTRY} and {COUNTRY} met in {CITY} to discuss the trade agreement .",
    "Police in {CITY} arrested {NUM} people after protests outside the offices of {COMPANY} .",
    "{RIGHTS} called on {COUNTRY} to release the journalists .",
    "President/NNP {PER} will visit {COUNTRY} and {COUNTRY} next month , a spokesman said .",
    "The {NAT} government rejected the report , {SURNAME} said in {CITY} .",
    "{PER} was elected mayor of {CITY} on {DAY} with {PCT} of the vote .",
    "Talks between {COUNTRY} and {COUNTRY} on the border will open in {CITY} on {DATE} .",
    "The storm damaged {NUM} homes along the coast of {REGION} , the {RELIEF} said .",
    "{NAT_PL} will vote/VB in a national election on {DATE} .",
    "{SURNAME} , who leads the opposition , criticised the budget in an interview with the {MEDIA} .",
    "Officials in {CITY} said the bridge to {CITY} was closed/VBN after the storm .",
]
CULTURE = [
    "The {CULTURE_EVENT} opens in {CITY} on {DATE} with a concert by {PER} .",
    "{PER} won the {AWARD} for her novel about life in {CITY} .",
    "Researchers at {RESEARCH} said the study involved {NUM} patients in {COUNTRY} .",
    "The film , directed by {PER} , was shown in {LANGUAGE} with {LANGUAGE} subtitles .",
    "{PER} will lead the new laboratory at {RESEARCH} in {CITY} .",
    "More than {NUM} visitors came to the {CULTURE_EVENT} this year , organisers said .",
    "The {NAT} author {PER} was named/VBN winner of the {AWARD} on {DAY} .",
    "{PER} conducted an orchestra of {NUM} players in a sold-out concert in {CITY} .",
    "Tickets for the {CULTURE_EVENT} sold out/RP in {NUMWORD} days , {SURNAME} said .",
    "An exhibition of work by {PER} opens at the {VENUE} in {CITY} on {DAY} .",
    "The novel , written in {LANGUAGE} , was published/VBN in {COUNTRY} in {YEAR} .",
    "{PER} and {PER} will share/VB the {AWARD} , the jury said in {CITY} .",
]
TOPICS = {"sport": SPORT, "business": BUSINESS, "politics": POLITICS, "culture": CULTURE}

# Clauses for long sentences (joined with connectors, about 50-70 words).
CLAUSES = [
    "{PER} , who has led/VBN {COMPANY} since {YEAR} , said on {DAY} that the group would invest {MONEY} in "
    "new factories in {CITY} and {CITY} over the next {NUMWORD} years",
    "rival {COMPANY} has already announced/VBN plans to close {NUM} stores across {COUNTRY}",
    "according to a statement released by the {AGENCY} in {CITY} late on {DAY}",
    "the {NAT} government said it would review the deal with {BANK} before the end of {MONTH}",
    "{CLUB} , who beat {CLUB} {SCORE} in the {CUP} final , will play {CLUB} in {CITY} on {DAY}",
    "coach {PER} said his players were ready for the long trip to {COUNTRY}",
    "more than {NUM} people were moved/VBN from their homes in {REGION} after the river rose",
    "the {RELIEF} said rescue teams from {COUNTRY} and {COUNTRY} had reached the area",
    "{PER} , the {NAT} author whose novel won the {AWARD} in {YEAR} , will open the {CULTURE_EVENT} in "
    "{CITY} on {DATE}",
    "organisers expect {NUM} visitors , including {NUM} from {COUNTRY}",
    "{SURNAME} told the {MEDIA} that talks with {PER} in {CITY} had been difficult but useful",
]
CONNECTORS = [", while", ", and", "; meanwhile/RB ,", ", although", ", but"]

HEADLINES = {
    "sport": ["{SPORT_UPPER} - {CLUB_UPPER} BEAT {CLUB_UPPER} {SCORE} .",
              "{SPORT_UPPER} - {SURNAME_UPPER} WINS IN {CITY_UPPER} ."],
    "business": ["{COMPANY_UPPER} PROFIT RISES {PCT_UPPER} .", "{COMPANY_UPPER} TO BUY {COMPANY_UPPER} ."],
    "politics": ["{COUNTRY_UPPER} , {COUNTRY_UPPER} TO HOLD BORDER TALKS .",
                 "{SURNAME_UPPER} WINS VOTE IN {CITY_UPPER} ."],
    "culture": ["{CULTURE_EVENT_UPPER} OPENS IN {CITY_UPPER} .", "{SURNAME_UPPER} WINS {AWARD_UPPER} ."],
}
SPORTS = ["SOCCER", "ATHLETICS", "TENNIS", "CYCLING", "RUGBY", "SAILING"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
NUMWORDS = ["two", "three", "four", "five", "six", "seven", "eight", "ten"]

# --------------------------------------------------------------------------------------------------

Token = tuple[str, str, str]  # word, POS, NER


def load_lexicon() -> dict[str, str]:
    lexicon: dict[str, str] = {}
    for line in LEXICON_TEXT.strip().split("\n"):
        if ": " in line and not line.startswith(" "):
            tag, words = line.split(": ", 1)
        else:
            words = line
        for word in words.split():
            lexicon.setdefault(word, tag)  # a word listed twice keeps its first tag; templates can override
    return lexicon


LEXICON = load_lexicon()
ENTITY_POS = {"of": "IN", "de": "IN", "du": "IN", "to": "TO", "for": "IN", "the": "DT", "las": "DT", "&": "CC"}


def entity_tokens(name: str, ner: str, upper: bool = False, pos: str | None = None) -> list[Token]:
    words = name.split()
    out: list[Token] = []
    # "the Balkans": the article stays outside the entity, as in news annotation practice.
    if words[0] == "the":
        out.append(("THE" if upper else "the", "DT", "O"))
        words = words[1:]
    for i, word in enumerate(words):
        tag = pos or ENTITY_POS.get(word, "CD" if word.isdigit() else "NNP")
        out.append((word.upper() if upper else word, tag, f"{'B' if i == 0 else 'I'}-{ner}"))
    return out


def literal(word: str, upper: bool = False) -> Token:
    word, _, forced = word.partition("/")
    tag = forced or LEXICON.get(word)
    if tag is None:
        if word[:1].isupper() and word.lower() in LEXICON:
            tag = LEXICON[word.lower()]  # sentence-initial capital
        else:
            raise SystemExit(f"make_sample_data: no POS for template word {word!r}; add it to LEXICON_TEXT")
    return (word.upper() if upper else word, tag, "O")


class Generator:
    """Fills templates for one split, with that split's share of the names and a cast per document."""

    def __init__(self, rng: random.Random, pools: dict[str, list[str]]):
        self.rng = rng
        self.pools = pools
        self.cast: dict[str, list[str]] = {}

    def new_document(self) -> None:
        # A document keeps coming back to a few people, organisations and places, as news does.
        self.cast = {
            "PER": [self.person() for _ in range(3)],
            "CITY": self.rng.sample(self.pools["CITY"], 2),
        }

    def person(self) -> str:
        if self.rng.random() < 0.12:
            return self.rng.choice(self.pools["FULL"])
        return f"{self.rng.choice(self.pools['FIRST'])} {self.rng.choice(self.pools['LAST'])}"

    def pick(self, slot: str) -> str:
        if slot in self.cast and self.rng.random() < 0.6:
            return self.rng.choice(self.cast[slot])
        return self.person() if slot == "PER" else self.rng.choice(self.pools[slot])

    def number(self) -> str:
        value = self.rng.choice([self.rng.randint(2, 60), self.rng.randint(60, 900), self.rng.randint(1000, 90000)])
        return f"{value:,}"

    def fill(self, slot: str) -> list[Token]:
        upper = slot.endswith("_UPPER")
        slot = slot.removesuffix("_UPPER")
        rng = self.rng
        if slot == "PER":
            return entity_tokens(self.pick("PER"), "PER", upper)
        if slot == "SURNAME":
            return entity_tokens(self.pick("PER").split()[-1], "PER", upper)
        if slot in ("CITY", "COUNTRY", "REGION"):
            return entity_tokens(self.pick(slot), "LOC", upper)
        if slot in ("CLUB", "COMPANY", "BANK", "RESEARCH", "AGENCY", "RELIEF", "RIGHTS", "MEDIA", "VENUE"):
            return entity_tokens(self.pick(slot), "ORG", upper)
        if slot in ("CUP", "RACE", "CULTURE_EVENT", "AWARD", "PRODUCT"):
            return entity_tokens(self.pick(slot), "MISC", upper)
        if slot == "NAT":
            return entity_tokens(rng.choice(NATIONALITIES)[0], "MISC", upper, pos="JJ")
        if slot == "NAT_PL":
            return entity_tokens(rng.choice(NATIONALITIES)[1], "MISC", upper, pos="NNPS")
        if slot == "LANGUAGE":
            return entity_tokens(rng.choice(LANGUAGES), "MISC", upper)
        if slot == "SPORT":
            return [(rng.choice(SPORTS), "NN", "O")]
        if slot == "SCORE":  # winner first
            winner = rng.randint(1, 5)
            return [(f"{winner}-{rng.randint(0, winner - 1)}", "CD", "O")]
        if slot == "SCORE_DRAW":
            goals = rng.randint(0, 3)
            return [(f"{goals}-{goals}", "CD", "O")]
        if slot == "MONTH":
            return [(rng.choice(MONTHS), "NNP", "O")]
        if slot == "NUM":
            return [(self.number(), "CD", "O")]
        if slot == "NUMWORD":
            return [(rng.choice(NUMWORDS), "CD", "O")]
        if slot == "YEAR":
            return [(str(rng.randint(1998, 2023)), "CD", "O")]
        if slot == "DAY":
            return [(rng.choice(DAYS), "NNP", "O")]
        if slot == "DATE":
            return [(rng.choice(MONTHS), "NNP", "O"), (str(rng.randint(1, 28)), "CD", "O")]
        if slot == "PCT":
            word = "PERCENT" if upper else "percent"
            return [(f"{rng.randint(1, 40)}.{rng.randint(0, 9)}", "CD", "O"), (word, "NN", "O")]
        if slot == "MONEY":
            amount = f"{rng.randint(1, 950)}.{rng.randint(1, 9)}"
            scale = rng.choice(["million", "billion"])
            if rng.random() < 0.5:
                return [("$", "$", "O"), (amount, "CD", "O"), (scale, "CD", "O")]
            return [(amount, "CD", "O"), (scale, "CD", "O"), (rng.choice(["euros", "crowns", "pounds"]), "NNS", "O")]
        raise SystemExit(f"make_sample_data: unknown slot {{{slot}}}")

    def render(self, template: str) -> list[Token]:
        tokens: list[Token] = []
        for word in template.split():
            if word.startswith("{") and word.endswith("}"):
                tokens += self.fill(word[1:-1])
            else:
                upper = word.isupper() and len(word) > 1 and "/" not in word
                tokens.append(literal(word.lower(), True) if upper and word.lower() in LEXICON else literal(word))
        return tokens

    def dateline(self) -> list[Token]:
        city = entity_tokens(self.pick("CITY"), "LOC", upper=True)
        month, day = self.rng.randint(1, 12), self.rng.randint(1, 28)
        return city + [(f"{self.rng.randint(2019, 2024)}-{month:02d}-{day:02d}", "CD", "O")]

    def long_sentence(self) -> list[Token]:
        tokens: list[Token] = []
        for i, clause in enumerate(self.rng.sample(CLAUSES, len(CLAUSES))):
            if len(tokens) >= 45:
                break
            if i:
                tokens += self.render(self.rng.choice(CONNECTORS))
            tokens += self.render(clause)
        first = tokens[0]
        tokens[0] = (first[0][:1].upper() + first[0][1:], first[1], first[2])
        return tokens + [(".", ".", "O")]

    def document(self, size: int) -> list[list[Token]]:
        self.new_document()
        topic = self.rng.choice(list(TOPICS))
        sentences: list[list[Token]] = []
        if self.rng.random() < 0.5:
            sentences.append(self.render(self.rng.choice(HEADLINES[topic])))
        if self.rng.random() < 0.7:
            sentences.append(self.dateline())
        while len(sentences) < size:
            roll = self.rng.random()
            if roll < 0.06:
                sentences.append(self.long_sentence())
            else:
                # Mostly on topic, sometimes not: entity types must not be guessable from the topic alone.
                pool = TOPICS[topic] if roll < 0.8 else TOPICS[self.rng.choice(list(TOPICS))]
                sentences.append(self.render(self.rng.choice(pool)))
        return sentences[:size]


def split_pools(rng: random.Random) -> dict[str, dict[str, list[str]]]:
    """Each name pool: 70% shared by every split, then 10% each for train, validation and test only."""
    pools = {"FIRST": FIRST_NAMES, "LAST": LAST_NAMES, "FULL": FULL_NAMES, "CLUB": CLUBS, "COMPANY": COMPANIES,
             "BANK": BANKS, "RESEARCH": RESEARCH, "AGENCY": AGENCIES, "RELIEF": RELIEF,
             "RIGHTS": RIGHTS, "MEDIA": MEDIA, "VENUE": VENUES, "CITY": CITIES, "COUNTRY": COUNTRIES,
             "REGION": REGIONS,
             "CUP": CUPS, "RACE": RACES, "CULTURE_EVENT": CULTURE_EVENTS, "AWARD": AWARDS, "PRODUCT": PRODUCTS}
    by_split: dict[str, dict[str, list[str]]] = {split: {} for split in SPLIT_SIZES}
    for key, names in pools.items():
        names = list(names)
        rng.shuffle(names)
        n = len(names)
        shared_end, train_end, validation_end = round(n * 0.7), round(n * 0.8), round(n * 0.9)
        own = {"train": names[shared_end:train_end], "validation": names[train_end:validation_end],
               "test": names[validation_end:]}
        for split in SPLIT_SIZES:
            by_split[split][key] = names[:shared_end] + own[split]
    return by_split


def chunk_tags(pos: list[str], words: list[str]) -> list[str]:
    """IOB2 chunk tags from POS tags by a few rules (NP, VP, PP, SBAR, ADVP, ADJP, PRT; O for the rest)."""
    np_tags = {"DT", "PDT", "PRP$", "JJ", "JJR", "JJS", "CD", "NN", "NNS", "NNP", "NNPS", "POS", "$", "PRP",
               "EX", "WP", "WP$", "WDT"}
    np_starters = {"DT", "PDT", "PRP$", "PRP", "WP", "WP$", "WDT", "EX"}
    nouns = {"NN", "NNS", "NNP", "NNPS", "CD", "PRP", "$"}
    verbs = {"MD", "VB", "VBD", "VBG", "VBN", "VBP", "VBZ"}
    chunks: list[str] = []
    prev = "O"
    for i, tag in enumerate(pos):
        nxt = pos[i + 1] if i + 1 < len(pos) else ""
        after = pos[i + 1:]
        if (tag == "JJR" and i + 1 < len(words) and words[i + 1] == "than") or (
            words[i] == "than" and prev == "NP" and nxt == "CD"
        ):
            kind, new = "NP", words[i] != "than"  # "More than 300 visitors" is one noun phrase
        elif tag in verbs or (tag == "TO" and nxt in verbs) or (tag == "RB" and prev == "VP" and nxt in verbs):
            kind, new = "VP", prev != "VP"
        elif tag in ("IN", "TO"):
            kind, new = ("SBAR" if words[i] in SUBORDINATORS and tag == "IN" else "PP"), True
        elif tag in np_tags:
            # A lone adjective before no noun is an adjective phrase ("happy with").
            ahead = [t for t in after if t not in ("JJ", "JJR", "JJS", "CD", "VBN")]
            if tag in ("JJ", "JJR") and prev != "NP" and not (ahead and ahead[0] in nouns | {"POS"}):
                kind, new = "ADJP", True
            else:
                kind = "NP"
                new = prev != "NP" or tag in np_starters or (i > 0 and pos[i - 1] == "POS")
        elif tag == "RB":
            kind, new = "ADVP", True
        elif tag == "RP":
            kind, new = "PRT", True
        else:
            kind, new = "O", True
        chunks.append("O" if kind == "O" else f"{'B' if new else 'I'}-{kind}")
        prev = kind
    return chunks


def generate() -> dict[str, str]:
    rng = random.Random(SEED)
    pools = split_pools(rng)
    texts: dict[str, str] = {}
    for split, target in SPLIT_SIZES.items():
        generator = Generator(random.Random(f"{SEED}-{split}"), pools[split])
        lines: list[str] = []
        written = 0
        while written < target:
            remaining = target - written
            size = remaining if remaining <= 15 else min(rng.randint(5, 15), remaining - 5)
            lines += ["-DOCSTART- -X- -X- O", ""]
            for sentence in generator.document(size):
                words = [w for w, _, _ in sentence]
                pos = [p for _, p, _ in sentence]
                for (word, tag, ner), chunk in zip(sentence, chunk_tags(pos, words)):
                    lines.append(f"{word} {tag} {chunk} {ner}")
                lines.append("")
            written += size
        texts[split] = "\n".join(lines) + "\n"
    return texts


def self_check(texts: dict[str, str]) -> None:
    """Tag columns must be valid IOB2 and every word a single field."""
    for split, text in texts.items():
        sentences = 0
        previous = {"chunk": "O", "ner": "O"}
        for number, line in enumerate(text.split("\n"), 1):
            if not line or line.startswith("-DOCSTART-"):
                sentences += bool(line == "" and previous.get("in"))
                previous = {"chunk": "O", "ner": "O"}
                continue
            fields = line.split(" ")
            assert len(fields) == 4 and all(fields), f"{split}:{number}: {line!r}"
            previous["in"] = True
            for column, tag in (("chunk", fields[2]), ("ner", fields[3])):
                if tag.startswith("I-"):
                    assert previous[column][2:] == tag[2:] and previous[column] != "O", f"{split}:{number}: {line!r}"
                previous[column] = tag
        assert sentences == SPLIT_SIZES[split], (split, sentences)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="verify the committed files instead of writing")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help=f"output folder (default {OUT_DIR})")
    args = parser.parse_args(argv)
    texts = generate()
    self_check(texts)
    for split, text in texts.items():
        path = args.out / f"{split}.conll"
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                print(f"{path} differs from what {Path(__file__).name} generates; run it to rewrite", file=sys.stderr)
                return 1
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8", newline="\n")
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
