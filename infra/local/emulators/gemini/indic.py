"""Deterministic text in the language a request asks for, in that language's script.

Muse states the language to write in with one line in the prompt or system instruction:
`Write in: Tamil (ta), Tamil script.` (`shared.writing.specs.language_label`). The emulator reads it the
same way (the first such line, system instruction first) and answers strings in that language: short
festive-gifting sentences written natively per language (no digits, dates or superlatives, so the
QA gate has nothing to flag), chosen and ordered by a seed, so the same request gets the same text.
English, or no such line, keeps the emulator's usual English strings.
"""

from __future__ import annotations

import re
from typing import Any

from infra.local.emulators.gemini.text import content_texts, seed_int, user_text

REQUEST = re.compile(r"Write in: [^()\n]{2,40}\((?P<code>[a-z]{2})\)")
MARKER = "[emulated] "
MARKER_MIN_LENGTH = 60
"""Fields shorter than this (an ad headline, a call to action) carry no marker: it would crowd out the text."""

SENTENCES: dict[str, tuple[str, ...]] = {
    "hi": ("अपने परिवार के साथ त्योहार की खुशियाँ बाँटें।", "आज ही ऑर्डर करें और अपनों को खुश करें।",
           "हर घूँट में घर का स्वाद है।", "यह तोहफा आपके अपनों के लिए है।", "दोस्तों के साथ हर पल को खास बनाएं।",
           "त्योहार की मिठास अब आपके घर तक।"),
    "mr": ("आपल्या कुटुंबासोबत सणाचा आनंद साजरा करा.", "आजच ऑर्डर करा आणि आपल्या माणसांना आनंद द्या.",
           "प्रत्येक घोटात घरची चव आहे.", "ही भेट तुमच्या प्रियजनांसाठी आहे.", "मित्रांसोबत प्रत्येक क्षण खास बनवा.",
           "सणाचा गोडवा आता तुमच्या घरी."),
    "ne": ("आफ्नो परिवारसँग चाडको खुसी बाँड्नुहोस्।", "आजै अर्डर गर्नुहोस् र आफन्तलाई खुसी बनाउनुहोस्।",
           "हरेक चुस्कीमा घरको स्वाद छ।", "यो उपहार तपाईंका प्रियजनका लागि हो।",
           "साथीहरूसँग हरेक पल विशेष बनाउनुहोस्।", "चाडको मिठास अब तपाईंको घरमा।"),
    "bn": ("আপনার পরিবারের সঙ্গে উৎসবের আনন্দ ভাগ করে নিন।", "আজই অর্ডার করুন আর প্রিয়জনকে খুশি করুন।",
           "প্রতিটি চুমুকে ঘরের স্বাদ।", "এই উপহার আপনার প্রিয়জনের জন্য।",
           "বন্ধুদের সঙ্গে প্রতিটি মুহূর্ত বিশেষ করে তুলুন।", "উৎসবের মিষ্টি স্বাদ এখন আপনার ঘরে।"),
    "as": ("আপোনাৰ পৰিয়ালৰ সৈতে উৎসৱৰ আনন্দ ভাগ কৰক।", "আজিয়েই অৰ্ডাৰ কৰক আৰু আপোনজনক সুখী কৰক।",
           "প্ৰতিটো চুমুকত ঘৰৰ সোৱাদ।", "এই উপহাৰ আপোনাৰ প্ৰিয়জনৰ বাবে।",
           "বন্ধুবৰ্গৰ সৈতে প্ৰতিটো মুহূৰ্ত বিশেষ কৰি তোলক।", "উৎসৱৰ মিঠা সোৱাদ এতিয়া আপোনাৰ ঘৰত।"),
    "pa": ("ਆਪਣੇ ਪਰਿਵਾਰ ਨਾਲ ਤਿਉਹਾਰ ਦੀ ਖੁਸ਼ੀ ਸਾਂਝੀ ਕਰੋ।", "ਅੱਜ ਹੀ ਆਰਡਰ ਕਰੋ ਅਤੇ ਆਪਣਿਆਂ ਨੂੰ ਖੁਸ਼ ਕਰੋ।",
           "ਹਰ ਘੁੱਟ ਵਿੱਚ ਘਰ ਦਾ ਸੁਆਦ ਹੈ।", "ਇਹ ਤੋਹਫ਼ਾ ਤੁਹਾਡੇ ਪਿਆਰਿਆਂ ਲਈ ਹੈ।", "ਦੋਸਤਾਂ ਨਾਲ ਹਰ ਪਲ ਖਾਸ ਬਣਾਓ।",
           "ਤਿਉਹਾਰ ਦੀ ਮਿਠਾਸ ਹੁਣ ਤੁਹਾਡੇ ਘਰ।"),
    "gu": ("તમારા પરિવાર સાથે તહેવારની ખુશી વહેંચો.", "આજે જ ઓર્ડર કરો અને પ્રિયજનોને ખુશ કરો.",
           "દરેક ચુસ્કીમાં ઘરનો સ્વાદ છે.", "આ ભેટ તમારા પ્રિયજનો માટે છે.", "મિત્રો સાથે દરેક પળ ખાસ બનાવો.",
           "તહેવારની મીઠાશ હવે તમારા ઘરે."),
    "or": ("ଆପଣଙ୍କ ପରିବାର ସହିତ ପର୍ବର ଆନନ୍ଦ ବାଣ୍ଟନ୍ତୁ।", "ଆଜି ହିଁ ଅର୍ଡର କରନ୍ତୁ ଏବଂ ପ୍ରିୟଜନଙ୍କୁ ଖୁସି କରନ୍ତୁ।",
           "ପ୍ରତି ଚୁମୁକରେ ଘରର ସ୍ୱାଦ।", "ଏହି ଉପହାର ଆପଣଙ୍କ ପ୍ରିୟଜନଙ୍କ ପାଇଁ।",
           "ସାଙ୍ଗମାନଙ୍କ ସହିତ ପ୍ରତି ମୁହୂର୍ତ୍ତକୁ ବିଶେଷ କରନ୍ତୁ।", "ପର୍ବର ମିଠା ସ୍ୱାଦ ଏବେ ଆପଣଙ୍କ ଘରେ।"),
    "ta": ("உங்கள் குடும்பத்துடன் பண்டிகை மகிழ்ச்சியைப் பகிருங்கள்.",
           "இன்றே ஆர்டர் செய்து அன்புக்குரியவர்களை மகிழ்விக்கவும்.", "ஒவ்வொரு மிடறிலும் வீட்டின் சுவை.",
           "இந்தப் பரிசு உங்கள் அன்புக்குரியவர்களுக்காக.", "நண்பர்களுடன் ஒவ்வொரு தருணத்தையும் சிறப்பாக்குங்கள்.",
           "பண்டிகையின் இனிமை இப்போது உங்கள் வீட்டில்."),
    "te": ("మీ కుటుంబంతో పండుగ ఆనందాన్ని పంచుకోండి.", "ఈరోజే ఆర్డర్ చేసి మీ ప్రియమైనవారిని సంతోషపెట్టండి.",
           "ప్రతి గుటకలో ఇంటి రుచి.", "ఈ బహుమతి మీ ప్రియమైనవారి కోసం.",
           "స్నేహితులతో ప్రతి క్షణాన్ని ప్రత్యేకంగా చేయండి.", "పండుగ తీపి ఇప్పుడు మీ ఇంటికి."),
    "kn": ("ನಿಮ್ಮ ಕುಟುಂಬದೊಂದಿಗೆ ಹಬ್ಬದ ಸಂತೋಷವನ್ನು ಹಂಚಿಕೊಳ್ಳಿ.", "ಇಂದೇ ಆರ್ಡರ್ ಮಾಡಿ ಮತ್ತು ಪ್ರೀತಿಪಾತ್ರರನ್ನು ಸಂತೋಷಪಡಿಸಿ.",
           "ಪ್ರತಿ ಗುಟುಕಿನಲ್ಲೂ ಮನೆಯ ರುಚಿ.", "ಈ ಉಡುಗೊರೆ ನಿಮ್ಮ ಪ್ರೀತಿಪಾತ್ರರಿಗಾಗಿ.",
           "ಸ್ನೇಹಿತರೊಂದಿಗೆ ಪ್ರತಿ ಕ್ಷಣವನ್ನು ವಿಶೇಷವಾಗಿಸಿ.", "ಹಬ್ಬದ ಸಿಹಿ ಈಗ ನಿಮ್ಮ ಮನೆಗೆ."),
    "ml": ("നിങ്ങളുടെ കുടുംബത്തോടൊപ്പം ഉത്സവത്തിന്റെ സന്തോഷം പങ്കിടൂ.",
           "ഇന്നുതന്നെ ഓർഡർ ചെയ്ത് പ്രിയപ്പെട്ടവരെ സന്തോഷിപ്പിക്കൂ.", "ഓരോ തുള്ളിയിലും വീടിന്റെ രുചി.",
           "ഈ സമ്മാനം നിങ്ങളുടെ പ്രിയപ്പെട്ടവർക്കായി.", "സുഹൃത്തുക്കളോടൊപ്പം ഓരോ നിമിഷവും സവിശേഷമാക്കൂ.",
           "ഉത്സവത്തിന്റെ മധുരം ഇപ്പോൾ നിങ്ങളുടെ വീട്ടിൽ."),
    "ur": ("اپنے خاندان کے ساتھ تہوار کی خوشیاں بانٹیں۔", "آج ہی آرڈر کریں اور اپنوں کو خوش کریں۔",
           "ہر گھونٹ میں گھر کا ذائقہ ہے۔", "یہ تحفہ آپ کے پیاروں کے لیے ہے۔", "دوستوں کے ساتھ ہر لمحہ خاص بنائیں۔",
           "تہوار کی مٹھاس اب آپ کے گھر تک۔"),
}
"""Native sentences per language (the gate identifies them: hi, mr and ne by their function words, as by ৰ/ৱ)."""
PHRASES: dict[str, tuple[str, ...]] = {
    "hi": ("खुशियों का तोहफा", "आज ही ऑर्डर करें", "अपनों के लिए", "त्योहार की खुशियाँ"),
    "mr": ("आनंदाची भेट", "आजच ऑर्डर करा", "आपल्या माणसांसाठी", "सणाचा आनंद"),
    "ne": ("खुसीको उपहार", "आजै अर्डर गर्नुहोस्", "आफ्नो परिवारलाई", "चाडको खुसी"),
    "bn": ("আনন্দের উপহার", "আজই অর্ডার করুন", "প্রিয়জনের জন্য", "উৎসবের আনন্দ"),
    "as": ("আনন্দৰ উপহাৰ", "আজিয়েই অৰ্ডাৰ কৰক", "প্ৰিয়জনৰ বাবে", "উৎসৱৰ আনন্দ"),
    "pa": ("ਖੁਸ਼ੀਆਂ ਦਾ ਤੋਹਫ਼ਾ", "ਅੱਜ ਹੀ ਆਰਡਰ ਕਰੋ", "ਆਪਣਿਆਂ ਲਈ", "ਤਿਉਹਾਰ ਦੀ ਖੁਸ਼ੀ"),
    "gu": ("ખુશીની ભેટ", "આજે જ ઓર્ડર કરો", "પ્રિયજનો માટે", "તહેવારની ખુશી"),
    "or": ("ଆନନ୍ଦର ଉପହାର", "ଆଜି ହିଁ ଅର୍ଡର କରନ୍ତୁ", "ପ୍ରିୟଜନଙ୍କ ପାଇଁ", "ପର୍ବର ଆନନ୍ଦ"),
    "ta": ("மகிழ்ச்சியின் பரிசு", "இன்றே ஆர்டர் செய்யுங்கள்", "அன்புக்குரியவர்களுக்கு", "பண்டிகை மகிழ்ச்சி"),
    "te": ("ఆనందాల బహుమతి", "ఈరోజే ఆర్డర్ చేయండి", "ప్రియమైనవారి కోసం", "పండుగ ఆనందం"),
    "kn": ("ಸಂತೋಷದ ಉಡುಗೊರೆ", "ಇಂದೇ ಆರ್ಡರ್ ಮಾಡಿ", "ಪ್ರೀತಿಪಾತ್ರರಿಗಾಗಿ", "ಹಬ್ಬದ ಸಂತೋಷ"),
    "ml": ("സന്തോഷത്തിന്റെ സമ്മാനം", "ഇന്നുതന്നെ ഓർഡർ ചെയ്യൂ", "പ്രിയപ്പെട്ടവർക്കായി", "ഉത്സവ സന്തോഷം"),
    "ur": ("خوشیوں کا تحفہ", "آج ہی آرڈر کریں", "اپنوں کے لیے", "تہوار کی خوشیاں"),
}
"""Short phrases for tight fields (headlines, calls to action, hashtags)."""


def requested_language(body: dict[str, Any]) -> str | None:
    """The language a request asks to write in, when it is one the emulator writes (not English)."""
    system = body.get("systemInstruction") or body.get("system_instruction")
    texts = [*(content_texts([system]) if isinstance(system, dict) else []), user_text(body)]
    for text in texts:
        match = REQUEST.search(text)
        if match:
            return match["code"] if match["code"] in SENTENCES else None
    return None


def text_in(language: str, seed: str, *, max_length: int | None = None, label: str = "") -> str:
    """A deterministic string in `language` that fits `max_length` code points."""
    pick = seed_int(seed)
    if "hashtag" in label.lower():
        phrase = PHRASES[language][pick % len(PHRASES[language])]
        return ("#" + re.sub(r"\s+", "", phrase))[: max_length or None]
    sentences = SENTENCES[language]
    ordered = [sentences[(pick + i) % len(sentences)] for i in range(len(sentences))]
    if max_length is None:
        return MARKER + " ".join(ordered[:3])
    prefix = MARKER if max_length >= MARKER_MIN_LENGTH else ""
    chosen: list[str] = []
    for sentence in ordered:
        candidate = prefix + " ".join([*chosen, sentence])
        if len(candidate) <= max_length and len(chosen) < 3:
            chosen.append(sentence)
    if chosen:
        return prefix + " ".join(chosen)
    phrases = PHRASES[language]
    fitting = [p for p in (phrases[(pick + i) % len(phrases)] for i in range(len(phrases))) if len(p) <= max_length]
    return fitting[0] if fitting else phrases[pick % len(phrases)][:max_length]
