"""Cities of the benchmark's world: where mirrors stand and where clients come from."""

from __future__ import annotations

from attrs import frozen


@frozen
class City:
    """A city with the GeoLite2 fields the benchmark writes."""

    name: str
    country_code: str
    country: str
    continent: str
    latitude: float
    longitude: float
    time_zone: str


def _c(name: str, cc: str, country: str, cont: str, lat: float, lon: float, tz: str) -> City:
    return City(name, cc, country, cont, lat, lon, tz)


CITIES: tuple[City, ...] = (
    _c("Paris", "FR", "France", "EU", 48.8566, 2.3522, "Europe/Paris"),
    _c("Lyon", "FR", "France", "EU", 45.764, 4.8357, "Europe/Paris"),
    _c("Berlin", "DE", "Germany", "EU", 52.52, 13.405, "Europe/Berlin"),
    _c("Frankfurt", "DE", "Germany", "EU", 50.1109, 8.6821, "Europe/Berlin"),
    _c("Munich", "DE", "Germany", "EU", 48.1351, 11.582, "Europe/Berlin"),
    _c("Amsterdam", "NL", "Netherlands", "EU", 52.3676, 4.9041, "Europe/Amsterdam"),
    _c("Brussels", "BE", "Belgium", "EU", 50.8503, 4.3517, "Europe/Brussels"),
    _c("London", "GB", "United Kingdom", "EU", 51.5074, -0.1278, "Europe/London"),
    _c("Manchester", "GB", "United Kingdom", "EU", 53.4808, -2.2426, "Europe/London"),
    _c("Dublin", "IE", "Ireland", "EU", 53.3498, -6.2603, "Europe/Dublin"),
    _c("Madrid", "ES", "Spain", "EU", 40.4168, -3.7038, "Europe/Madrid"),
    _c("Lisbon", "PT", "Portugal", "EU", 38.7223, -9.1393, "Europe/Lisbon"),
    _c("Milan", "IT", "Italy", "EU", 45.4642, 9.19, "Europe/Rome"),
    _c("Rome", "IT", "Italy", "EU", 41.9028, 12.4964, "Europe/Rome"),
    _c("Zurich", "CH", "Switzerland", "EU", 47.3769, 8.5417, "Europe/Zurich"),
    _c("Vienna", "AT", "Austria", "EU", 48.2082, 16.3738, "Europe/Vienna"),
    _c("Prague", "CZ", "Czechia", "EU", 50.0755, 14.4378, "Europe/Prague"),
    _c("Warsaw", "PL", "Poland", "EU", 52.2297, 21.0122, "Europe/Warsaw"),
    _c("Stockholm", "SE", "Sweden", "EU", 59.3293, 18.0686, "Europe/Stockholm"),
    _c("Oslo", "NO", "Norway", "EU", 59.9139, 10.7522, "Europe/Oslo"),
    _c("Helsinki", "FI", "Finland", "EU", 60.1699, 24.9384, "Europe/Helsinki"),
    _c("Copenhagen", "DK", "Denmark", "EU", 55.6761, 12.5683, "Europe/Copenhagen"),
    _c("Athens", "GR", "Greece", "EU", 37.9838, 23.7275, "Europe/Athens"),
    _c("Bucharest", "RO", "Romania", "EU", 44.4268, 26.1025, "Europe/Bucharest"),
    _c("Kyiv", "UA", "Ukraine", "EU", 50.4501, 30.5234, "Europe/Kyiv"),
    _c("Istanbul", "TR", "Turkey", "AS", 41.0082, 28.9784, "Europe/Istanbul"),
    _c("New York", "US", "United States", "NA", 40.7128, -74.006, "America/New_York"),
    _c("Ashburn", "US", "United States", "NA", 39.0438, -77.4874, "America/New_York"),
    _c("Chicago", "US", "United States", "NA", 41.8781, -87.6298, "America/Chicago"),
    _c("Dallas", "US", "United States", "NA", 32.7767, -96.797, "America/Chicago"),
    _c("Denver", "US", "United States", "NA", 39.7392, -104.9903, "America/Denver"),
    _c("Seattle", "US", "United States", "NA", 47.6062, -122.3321, "America/Los_Angeles"),
    _c("San Jose", "US", "United States", "NA", 37.3382, -121.8863, "America/Los_Angeles"),
    _c("Los Angeles", "US", "United States", "NA", 34.0522, -118.2437, "America/Los_Angeles"),
    _c("Toronto", "CA", "Canada", "NA", 43.6532, -79.3832, "America/Toronto"),
    _c("Montréal", "CA", "Canada", "NA", 45.5017, -73.5673, "America/Toronto"),
    _c("Vancouver", "CA", "Canada", "NA", 49.2827, -123.1207, "America/Vancouver"),
    _c("Mexico City", "MX", "Mexico", "NA", 19.4326, -99.1332, "America/Mexico_City"),
    _c("São Paulo", "BR", "Brazil", "SA", -23.5505, -46.6333, "America/Sao_Paulo"),
    _c("Rio de Janeiro", "BR", "Brazil", "SA", -22.9068, -43.1729, "America/Sao_Paulo"),
    _c("Buenos Aires", "AR", "Argentina", "SA", -34.6037, -58.3816,
       "America/Argentina/Buenos_Aires"),
    _c("Santiago", "CL", "Chile", "SA", -33.4489, -70.6693, "America/Santiago"),
    _c("Bogotá", "CO", "Colombia", "SA", 4.711, -74.0721, "America/Bogota"),
    _c("Lima", "PE", "Peru", "SA", -12.0464, -77.0428, "America/Lima"),
    _c("Tokyo", "JP", "Japan", "AS", 35.6762, 139.6503, "Asia/Tokyo"),
    _c("Osaka", "JP", "Japan", "AS", 34.6937, 135.5023, "Asia/Tokyo"),
    _c("Seoul", "KR", "South Korea", "AS", 37.5665, 126.978, "Asia/Seoul"),
    _c("Taipei", "TW", "Taiwan", "AS", 25.033, 121.5654, "Asia/Taipei"),
    _c("Hong Kong", "HK", "Hong Kong", "AS", 22.3193, 114.1694, "Asia/Hong_Kong"),
    _c("Singapore", "SG", "Singapore", "AS", 1.3521, 103.8198, "Asia/Singapore"),
    _c("Jakarta", "ID", "Indonesia", "AS", -6.2088, 106.8456, "Asia/Jakarta"),
    _c("Bangkok", "TH", "Thailand", "AS", 13.7563, 100.5018, "Asia/Bangkok"),
    _c("Mumbai", "IN", "India", "AS", 19.076, 72.8777, "Asia/Kolkata"),
    _c("Bangalore", "IN", "India", "AS", 12.9716, 77.5946, "Asia/Kolkata"),
    _c("Dubai", "AE", "United Arab Emirates", "AS", 25.2048, 55.2708, "Asia/Dubai"),
    _c("Tel Aviv", "IL", "Israel", "AS", 32.0853, 34.7818, "Asia/Jerusalem"),
    _c("Sydney", "AU", "Australia", "OC", -33.8688, 151.2093, "Australia/Sydney"),
    _c("Melbourne", "AU", "Australia", "OC", -37.8136, 144.9631, "Australia/Melbourne"),
    _c("Auckland", "NZ", "New Zealand", "OC", -36.8485, 174.7633, "Pacific/Auckland"),
    _c("Johannesburg", "ZA", "South Africa", "AF", -26.2041, 28.0473, "Africa/Johannesburg"),
    _c("Cape Town", "ZA", "South Africa", "AF", -33.9249, 18.4241, "Africa/Johannesburg"),
    _c("Nairobi", "KE", "Kenya", "AF", -1.2921, 36.8219, "Africa/Nairobi"),
    _c("Lagos", "NG", "Nigeria", "AF", 6.5244, 3.3792, "Africa/Lagos"),
    _c("Cairo", "EG", "Egypt", "AF", 30.0444, 31.2357, "Africa/Cairo"),
    _c("Casablanca", "MA", "Morocco", "AF", 33.5731, -7.5898, "Africa/Casablanca"),
    _c("Reykjavik", "IS", "Iceland", "EU", 64.1466, -21.9426, "Atlantic/Reykjavik"),
    _c("Riga", "LV", "Latvia", "EU", 56.9496, 24.1052, "Europe/Riga"),
    _c("Budapest", "HU", "Hungary", "EU", 47.4979, 19.0402, "Europe/Budapest"),
    _c("Sofia", "BG", "Bulgaria", "EU", 42.6977, 23.3219, "Europe/Sofia"),
    _c("Manila", "PH", "Philippines", "AS", 14.5995, 120.9842, "Asia/Manila"),
    _c("Hanoi", "VN", "Vietnam", "AS", 21.0278, 105.8342, "Asia/Ho_Chi_Minh"),
    _c("Karachi", "PK", "Pakistan", "AS", 24.8607, 67.0011, "Asia/Karachi"),
)

# Neighbouring countries some mirrors also serve (second and later ``countryCodes``).
NEIGHBOURS: dict[str, tuple[str, ...]] = {
    "FR": ("BE", "LU", "CH"),
    "DE": ("AT", "CH"),
    "NL": ("BE", "LU"),
    "SE": ("NO", "DK"),
    "US": ("CA",),
    "BR": ("AR", "UY"),
    "AU": ("NZ",),
    "ZA": ("NA", "BW"),
    "JP": ("KR",),
}
