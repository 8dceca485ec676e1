//! The simulator's behaviour catalogue: 203 named smartphone behaviours in 17 categories, each
//! with a location profile, a time-of-day profile and a weekend factor, plus the semantic
//! scripts (real-world next steps) and the popularity head.
//!
//! Entry syntax: `Name[:loc[:time[:weekend]]]`, missing fields take the category default.
//! loc ∈ H (home) W (work) C (commute) E (elsewhere) A (anywhere) T (travelling);
//! time ∈ a (all day) m (morning) d (working hours) l (meal times) e (evening) n (night);
//! weekend ∈ w (×2.5 on weekends) k (×0.3) 1 (no change).

/// `(category, intent, default "loc:time:weekend", entries)`.
pub const CATEGORIES: &[(&str, &str, &str, &str)] = &[
    ("Communication", "Keep in touch", "A:a:1",
     "Messaging|Voice call|Group chat|Email:W:d:k|Video call:H:e:w|Voicemail|Send voice message|Share location:E|Contacts lookup|Translate message"),
    ("Social", "Socialise", "A:e:1",
     "Social feed:A:a|Post photo|Edit profile:H|Comment on post|Live stream watch:H:e:w|Dating app:H:e:w|Community forum|Story viewing|Like notifications|Follow friend"),
    ("Entertainment", "Relax and watch", "H:e:w",
     "Short videos:A:a:1|Video streaming|Watch series episode|Movie trailer|Search movie showtimes|Buy movie ticket|Rate movie:E|Podcast episode:C:m:1|Livestream concert|Comics reader:C:a:1"),
    ("Music & Audio", "Listen", "A:a:1",
     "Music streaming|Create playlist:H:e|Song recognition:E:e:w|Radio app:C:m:k|Concert tickets:H:e|Event ticket wallet:E:e:w|Audiobook:C:e|Karaoke:E:e:w"),
    ("News & Reading", "Stay informed", "A:m:1",
     "News feed|Read article:C|E-book reading:H:n:w|Newsletter:W|Sports scores:A:e:w|Stock quotes:W:d:k|Magazine:H:e:w|Local news"),
    ("Productivity", "Get work done", "W:d:k",
     "Calendar:A:m:1|Notes:A:a:1|Video meeting|Document editing|Spreadsheet|Cloud drive|Task manager|Scan document|Presentation|Team chat|VPN connect|Password manager:A:a:1|Print document|Expense report|Job search:H:e:1|Submit job application:H:e:1|Interview preparation:H:e:1"),
    ("Navigation & Transport", "Get around", "C:a:1",
     "Maps navigation|Transit schedule:C:m:k|Ride hailing:E:e:w|Ride tracking:E:e:w|Rate driver:E:e:w|Bike sharing unlock:C:m|End bike ride:C:m|Parking payment:E:d|Traffic report:C:m:k|Fuel prices|EV charging:E|Car rental booking:H:e|Car rental pickup:T:d|Toll payment"),
    ("Travel", "Travel", "H:e:1",
     "Book flight|Online check-in:H:a|Boarding pass:T:a|Airport map:T:a|Flight status:T:a|Book hotel|Hotel check-in:T|Hotel review:T|Book train ticket|Train ticket QR:C:a|Travel guide:T:a:w|Currency converter:T:a|Visa application|Travel insurance|Translate menu:T:l"),
    ("Food & Drink", "Eat", "A:l:1",
     "Food delivery app:H|Order takeout:H|Track delivery:H|Rate restaurant:H:e|Restaurant reservation:A:d|Split bill:E:l:w|Recipe search:H:e:w|Coffee app order:C:m:k|Grocery list:H:e|Grocery delivery order:H:e|Track grocery delivery:H:d|Calorie counter|Wine pairing:H:e:w"),
    ("Shopping", "Shop", "H:e:w",
     "Online shopping browse:A:a|Add to cart|Checkout|Track package:A:a:1|Return item|Price comparison|Flash sale:A:d|Second-hand marketplace|Scan barcode:E:d|Loyalty card:E:d|Write product review|Gift ideas"),
    ("Finance", "Manage money", "A:d:1",
     "Mobile payment:E:a|Bank balance|Bank transfer|Payment confirmation:A:a|Credit card bill:H:e|Stock trading:W:d:k|Crypto prices:H:n|Budget tracker:H:e|Tax filing:H:e:w|Upload receipts:H:e:w|Insurance claim|Scan QR code:E:a|Pay utility bill:H:e|Loan calculator:H:e"),
    ("Health & Fitness", "Stay healthy", "H:m:1",
     "Step counter:A:a|Record workout:E:e:w|Share workout:E:e:w|Running route:E:m:w|Sleep tracker:H:n|Meditation:H:n|Period tracker|Book doctor appointment:H:d|Video consultation:H:d|Pharmacy order:H:d|Medication reminder|Heart rate check:A:a|Yoga class video:H:e:w|Gym class booking:H:e"),
    ("Education", "Learn", "H:e:1",
     "Language lesson|Vocabulary quiz|Online course video|Course quiz|Dictionary lookup:A:a|Homework help|Flashcards:C:m|Coding practice|Exam schedule:A:d|Campus portal:W:d:k"),
    ("Games", "Play", "H:e:w",
     "Casual game:A:a:1|Puzzle game:C:a:1|Strategy game|Multiplayer match|Daily game reward:H:m:1|Chess|Card game|Game livestream|Word game:C:m:1"),
    ("Home & Utilities", "Manage phone and home", "H:a:1",
     "Alarm clock:H:m|Weather check:A:m|Smart home control:H:e|Smart thermostat:H:n|Security camera view:W:d|Flashlight:A:n|Battery saver:A|File manager|Phone cleaner|Settings|App store update:H:n|Wi-Fi setup|Backup photos:H:n|Calculator:A:a|Clock timer:H:l|Robot vacuum:W:d"),
    ("Photo & Video", "Capture memories", "A:a:w",
     "Camera|Photo gallery|Edit photo|Photo collage:H:e|Screenshot:A:a:1|Video editing:H:e|Selfie filter:E:e"),
    ("Lifestyle & Services", "Run errands", "A:d:1",
     "Parcel locker pickup:E:e|Laundry service:H:e|Home cleaning booking:H:e:w|Pet care:H:m|Plant care reminder:H:m:w|Horoscope:H:m|Real estate listings:H:e:w|Apartment viewing booking:H:e:w|Moving service quote:H:e:w|Wedding planner:H:e:w|Charity donation:H:e|Volunteer signup:H:e:w|Car wash booking:E:d:w|Hair salon booking:H:e|Library book renewal:H:e|Dry cleaning pickup:E:e"),
];

/// The most popular behaviours, in rank order (rank 1 first). The rest are ranked by a seeded
/// shuffle after these.
pub const HEAD: &[&str] = &[
    "Messaging",
    "Social feed",
    "Web browsing",
    "Short videos",
    "Music streaming",
    "Email",
    "Voice call",
    "Maps navigation",
    "Photo gallery",
    "News feed",
    "Video streaming",
    "Camera",
    "Mobile payment",
    "Online shopping browse",
    "Weather check",
    "Group chat",
    "Calendar",
    "Alarm clock",
    "Casual game",
    "Transit schedule",
    "Notes",
    "Food delivery app",
];

/// Extra head entries not in any category list above: `(name, category)`.
pub const EXTRA: &[(&str, &str, &str)] = &[("Web browsing", "Communication", "A:a:1")];

/// Semantic scripts: each chain says that the next event after step i is, with probability
/// `script_strength`, one of step i's successors (a behaviour in several chains has several).
pub const SCRIPTS: &[&[&str]] = &[
    &[
        "Book flight",
        "Online check-in",
        "Boarding pass",
        "Flight status",
        "Airport map",
    ],
    &[
        "Book flight",
        "Book hotel",
        "Hotel check-in",
        "Hotel review",
    ],
    &[
        "Book flight",
        "Currency converter",
        "Travel guide",
        "Translate menu",
    ],
    &["Visa application", "Travel insurance", "Book flight"],
    &[
        "Food delivery app",
        "Order takeout",
        "Track delivery",
        "Rate restaurant",
    ],
    &[
        "Movie trailer",
        "Search movie showtimes",
        "Buy movie ticket",
        "Rate movie",
    ],
    &["Concert tickets", "Event ticket wallet", "Ride hailing"],
    &["Ride hailing", "Ride tracking", "Rate driver"],
    &["Bike sharing unlock", "End bike ride", "Step counter"],
    &[
        "Online shopping browse",
        "Add to cart",
        "Checkout",
        "Payment confirmation",
        "Track package",
    ],
    &[
        "Track package",
        "Parcel locker pickup",
        "Write product review",
    ],
    &["Track package", "Return item"],
    &["Price comparison", "Add to cart"],
    &[
        "Grocery list",
        "Grocery delivery order",
        "Track grocery delivery",
    ],
    &[
        "Book doctor appointment",
        "Video consultation",
        "Pharmacy order",
        "Medication reminder",
    ],
    &["Running route", "Record workout", "Share workout"],
    &["Gym class booking", "Record workout"],
    &["Camera", "Edit photo", "Post photo"],
    &["Camera", "Selfie filter", "Post photo"],
    &["Language lesson", "Vocabulary quiz", "Flashcards"],
    &["Online course video", "Course quiz", "Exam schedule"],
    &[
        "Job search",
        "Submit job application",
        "Interview preparation",
    ],
    &[
        "Tax filing",
        "Upload receipts",
        "Bank transfer",
        "Payment confirmation",
    ],
    &["Credit card bill", "Bank transfer"],
    &["Restaurant reservation", "Maps navigation"],
    &["Scan QR code", "Mobile payment", "Payment confirmation"],
    &["Car rental booking", "Car rental pickup", "Fuel prices"],
    &["Book train ticket", "Train ticket QR", "Transit schedule"],
    &[
        "Real estate listings",
        "Apartment viewing booking",
        "Moving service quote",
    ],
    &["Alarm clock", "Weather check", "News feed"],
    &["Email", "Calendar", "Video meeting", "Team chat"],
    &["Wedding planner", "Gift ideas", "Add to cart"],
    &["Multiplayer match", "Game livestream"],
    &["Daily game reward", "Casual game"],
    &["Meditation", "Sleep tracker"],
    &["Song recognition", "Create playlist", "Music streaming"],
    &["EV charging", "Mobile payment"],
    &["Hair salon booking", "Calendar"],
    &["Insurance claim", "Upload receipts"],
    &["Home cleaning booking", "Payment confirmation"],
];
