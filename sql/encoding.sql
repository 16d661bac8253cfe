--
-- sms_encoding() and sms_segments(): GSM-7 (basic table 1 septet,
-- extension table 2), UCS-2 for anything else; 160/153 and 70/67 per
-- segment; escape and surrogate pairs never split.
--
SELECT sms_encoding('Hello @ £$¥ èéùìòÇ ØøÅå ΔΦΓΛΩΠΨΣΘΞ ÆæßÉ !"#¤%&''()*+,-./ 0-9 :;<=>? ¡ ÄÖÑÜ§ ¿ äöñüà');
SELECT sms_encoding('extension: ^{}\[~]|€');
SELECT sms_encoding(E'form feed \f and newlines \n \r');
SELECT sms_encoding('backtick `');
SELECT sms_encoding('á is not GSM-7');
SELECT sms_encoding('Привет');
SELECT sms_encoding('emoji 😀');
SELECT sms_encoding('');

-- GSM-7 edges: 160 in one segment, then 153 per segment
SELECT n, sms_segments(repeat('a', n)) FROM unnest(ARRAY[1, 160, 161, 306, 307, 459, 460, 1600]) n;
-- extension characters count twice
SELECT n, sms_segments(repeat('€', n)) FROM unnest(ARRAY[80, 81]) n;
SELECT sms_segments(repeat('a', 159) || '€');	-- 161 septets
SELECT sms_segments(repeat('a', 158) || '€');	-- 160 septets
-- an escape pair does not straddle two segments: 152 + 2 > 153
SELECT sms_segments(repeat('a', 152) || '€' || repeat('a', 152));	-- 306 septets
SELECT sms_segments(repeat('a', 151) || '€' || repeat('a', 153));	-- 306 septets

-- UCS-2 edges: 70 in one segment, then 67 per segment
SELECT n, sms_segments(repeat('ж', n)) FROM unnest(ARRAY[1, 70, 71, 134, 135, 1600]) n;
-- a character outside the BMP is a surrogate pair: two units
SELECT n, sms_segments(repeat('😀', n)) FROM unnest(ARRAY[35, 36, 67]) n;
-- a surrogate pair does not straddle two segments: 66 + 2 > 67
SELECT sms_segments(repeat('ж', 66) || '😀' || repeat('ж', 66));	-- 134 units
SELECT sms_segments(repeat('ж', 65) || '😀' || repeat('ж', 67));	-- 134 units

-- one non-GSM character turns the whole body UCS-2
SELECT sms_segments(repeat('a', 70)), sms_segments(repeat('a', 69) || 'ж'), sms_segments(repeat('a', 70) || 'ж');
SELECT sms_segments(''), sms_segments(NULL), sms_encoding(NULL);
