from kb.language import detect, detect_code


def test_languages_are_named():
    assert detect_code("Mein Drucker druckt seit dem Update nicht mehr") == "de"
    assert detect_code("¿Cómo restablezco mi contraseña del correo?") == "es"
    assert detect_code("プリンターが印刷できません") == "ja"
    assert detect_code("The VPN keeps dropping every hour since the update") == "en"


def test_short_or_codes_only_get_no_language():
    assert detect("ORA-12541") is None
    assert detect("") is None
    assert detect("0x80070005 10.1.2.3 2026-01-01") is None
